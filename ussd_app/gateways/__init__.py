"""Gateway dialects: each module turns its gateway's requests into our types
(:mod:`ussd_app.gateways.types`) and our replies into its wire format."""
