"""Orchestration: runs on a workspace, resumable and cancellable.

The entry points (`translation.translate`, `animation.animate`, `generation.generate`, `batching.batch`,
`keyframe_folder.propagate_keyframes`), the workspace and its stages, the keyframe renderers and the executors
that place the stages (in this process or on Ray). The only package that knows about workspaces.

Every entry point starts with `preflight.check_run` (all checks that need no decoding), then works on a
`context.StageContext` (workspace, video, config, sizes, `Progress`) that the stage functions of `stages` and the
executors (`executors.LocalExecutor`, `executors.ray.RayExecutor`) share.
"""
