"""Calibrators beyond torch.ao: ONNX Runtime's and ModelOpt's, bit for bit."""
