"""HTTP routers of the alert service; each module builds its router from the settings."""
