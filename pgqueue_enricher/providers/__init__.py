"""Where a pointer's crop, description and embedding come from (Storage, Gemini, Voyage, local)."""
