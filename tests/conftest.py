"""Shared pytest fixtures: isolated settings, real synthesized speech, local fake servers."""
