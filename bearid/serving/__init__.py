"""From a bundle to an answer: bundles and the model store, the pipeline, the HTTP service's
parts, its typed answers, bentos and in-process scoring. Kept empty, so the client can import
`bearid.serving.schema` with pydantic alone."""
