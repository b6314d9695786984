"""Lip-sync engines behind one `LipEngine` interface: Wav2Lip (exact, ONNX) and the weight-free viseme engine."""
