"""The `content-pipeline` command line and the local stack it runs."""
