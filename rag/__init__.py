"""Retrieval-augmented answering: indexing, retrieval, language models and the LangGraph agent."""
