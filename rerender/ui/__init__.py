"""`rerender ui`: the three-stage workflow (first keyframe → keyframes → propagation) in the browser (Gradio).

Two more modes sit beside the video: "Still image" (`rerender.animate`: a camera move, then translation) and
"Text only" (`rerender.generate`: Text2Video-Zero keyframes, optionally with background smoothing); a reference
image (IP-Adapter, `prompt.style_image`) applies to all three.

The page is a thin layer over the library: every video run is `rerender.translate` on a per-session workspace
(`rerender.workflow.workspace`), with the page's settings applied to a `RerenderConfig` by `apply_overrides` (so
invalid values give the config's own messages), progress from `translate`'s callback, "Cancel" through its
`cancel` event, and the figures of `rerender.evaluation` afterwards. Help texts are the config fields' own
docstrings (`rerender.config.field_help`) and its choices the config's `Literal` aliases. Nothing on the page
waits on the network: system fonts only,
no analytics, no share link unless asked for.

Example:
    >>> from rerender.ui import build_app
    >>> app = build_app()                                # doctest: +SKIP
    >>> app.launch(server_name="127.0.0.1")             # doctest: +SKIP
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

from rerender.ui.app import Page, build_app, launch  # noqa: E402
from rerender.ui.fields import FieldSpec, field_spec  # noqa: E402
from rerender.ui.sessions import DEMO_VIDEO, UiSessions, sanitize_filename  # noqa: E402
from rerender.ui.summaries import environment_status  # noqa: E402

__all__ = [
    "DEMO_VIDEO",
    "FieldSpec",
    "Page",
    "field_spec",
    "sanitize_filename",
    "UiSessions",
    "build_app",
    "environment_status",
    "launch",
]
