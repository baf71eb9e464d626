"""The method: the backbone, candidate PEFT modules, criteria, the hybrid, the pruner, its Trainer callback, the recipe.

It imports only from ``prunepeft.common``; ``method.trainer_plugin.PrunePEFT`` is its face for users' own Trainers.
"""
