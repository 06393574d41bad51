"""Real-time marketing: Structured Streaming triggers to offers."""
