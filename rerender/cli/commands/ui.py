"""`rerender ui`: the web page."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK, UsageError
from rerender.cli.options import config_parent, load_config, verbose_parent


def register(commands) -> None:
    """Add `ui` to the `rerender` subparsers."""
    ui = commands.add_parser(
        "ui",
        parents=[verbose_parent(), config_parent()],
        help="the web page: first keyframe, keyframes, propagation (extra `ui`)",
    )
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    ui.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    ui.add_argument("--max-upload-mb", type=int, default=500, help="largest accepted upload in MiB (default: 500)")
    ui.add_argument("--no-clip", action="store_true", help="no CLIP scores in the figures")
    ui.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve the web page until Ctrl-C."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("gradio") is None:
        raise UsageError(
            'the web UI needs the `ui` extra (Gradio): pip install "rerender[ui]" (or -e ".[ui]" in a checkout)'
        )
    from rerender.ui import launch

    defaults = load_config(args)  # the CLI's defaults (renderer "auto") also without --config or --set
    app, address = launch(
        args.host,
        args.port,
        args.share,
        max_upload_mb=args.max_upload_mb,
        clip_model=None if not args.no_clip else "",
        defaults=defaults,
        quiet=True,
    )
    print(f"rerender ui: open {address} (Ctrl-C stops it)", flush=True)
    share_url = getattr(app, "share_url", None)
    if share_url:
        print(f"public share link: {share_url}", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
        shutil.rmtree(app.rerender_sessions.root, ignore_errors=True)
    return EXIT_OK
