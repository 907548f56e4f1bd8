"""From a results path to a served model: ONNX export with parity checks, bundles, promotion."""
