"""MimicGen-style tasks rebuilt from robosuite 1.5.1 primitives (NVIDIA's MimicGen targets robosuite 1.4).

Modules: ``tasks`` (the registry module: specs, ``MimicGenTask`` and the ``MimicGenExpert`` adapter,
built on ``cohirl.envs.robosuite``), ``objects`` (primitive object builders), ``base_env`` (shared
``ManipulationEnv`` scaffolding, D0/D1 initial-state widths), ``drawer`` (MugCleanup, HammerCleanup),
``threading_env`` (Threading), ``coffee`` (Coffee), ``control`` (waypoint phases on privileged poses)
and ``experts`` (the scripted closed-loop experts).
"""
