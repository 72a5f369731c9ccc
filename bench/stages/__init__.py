"""One module per DVC stage; each reads its own ``params.yaml`` sections."""
