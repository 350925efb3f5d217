"""The operator console: static pages served by the hub, no CDN and no front-end build."""
