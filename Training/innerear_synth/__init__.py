"""Synthetic training data: real temporal-bone anatomy (split, oriented) and its randomised rendering.

Training-only (imports torch nowhere, but is never needed to segment). One module per job:
``specimens`` (the real label maps and their tissue table), ``labyrinth_split`` (bony labyrinth ->
cochlea, vestibule, canals), ``specimen_axes`` (patient axes read from the anatomy), ``derive`` (the
command that writes the derived maps and their data card), ``spatial`` (random pose, scale,
elastic warp and field of view), ``appearance`` (random tissue gray values and scanner physics),
``render`` (one training scan + labels from a specimen) and ``pictures`` (PNG figures).
"""
