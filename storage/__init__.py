"""Persistent state under DATA_DIR: SQLite connections and LangGraph checkpoints."""
