"""Training, export and evaluation of the InnerEarSegmentation auto-context cascade.

Optional tooling: needs torch and onnx (see Training/requirements.txt); the extension itself
runs the exported ONNX files with onnxruntime only.
"""
