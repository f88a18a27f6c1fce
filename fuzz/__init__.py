"""Coverage-guided fuzzing of the webhook's signature, decryption and XML path (see fuzz_webhook)."""
