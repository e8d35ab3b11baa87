"""robosuite 1.5.1 tasks (Panda, OSC pose deltas + gripper) and their scripted experts.

Modules: ``sim`` (simulator plumbing shared with ``cohirl.envs.mimicgen``: quiet import, seeded global
RNG, rendering, fresh observations), ``tasks`` (the task specs and ``RobosuiteTask``; the registry
module), ``geometry`` (poses, yaws, OSC servoing, privileged ``SimView``), ``objectives`` (per-task
pick-and-place objectives and phase-machine settings) and ``experts`` (the closed-loop
``PickPlaceExpert``). Imports run one way: sim, geometry <- objectives <- experts; tasks imports
experts only inside ``make_expert``.
"""
