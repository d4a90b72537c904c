"""Semantic segmentation: dendrite and spine maps in [0, 1] from a stack.

Every method returns the same pair of float32 maps (dendrite, spine) with the image's shape,
so that spine objects, measurements and exports are shared by all of them.
"""
