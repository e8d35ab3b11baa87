"""The finetuning loop over a frozen base: the agent in the env, evaluation points, checkpoints, resume."""
