"""kaiwa token server: issues LiveKit room tokens and serves the web page."""
