"""mlineage's HTTP server side: the SageMaker-compatible API that boto3 clients talk to."""
