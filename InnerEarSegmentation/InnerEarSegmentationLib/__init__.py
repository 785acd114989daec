"""Slicer-free core of InnerEarSegmentation.

The Slicer module, the ``inner-ear-seg`` command line and the tests all import this package;
it depends only on numpy, scipy, SimpleITK, onnxruntime and vtk.
"""

__version__ = "0.1.0"
