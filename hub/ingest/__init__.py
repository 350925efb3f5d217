"""From broker to database: the MQTT source, decoding, detection hooks and the batching writer."""
