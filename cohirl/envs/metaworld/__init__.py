"""Meta-World v3 tasks (Sawyer) and their scripted experts: ``tasks`` holds the task specs, ``MetaWorldTask``
and ``MetaWorldExpert`` (Meta-World's shipped scripted policies, which read the task's raw observation)."""
