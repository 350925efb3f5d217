"""Device types, one module each; the registry imports every module here."""
