"""Audio transcoding, speech-to-text, text-to-speech and emotion detection."""
