"""Orchestration: runs on a workspace, resumable and cancellable.

The entry points (`translation.translate`, `animation.animate`, `generation.generate`, `batching.batch`,
`keyframe_folder.propagate_keyframes`), the workspace and its stages, the keyframe renderers and the executors
that place the stages (in this process or on Ray). The only package that knows about workspaces.
"""
