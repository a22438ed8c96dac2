"""Reference knowledge kept apart from personal memory: the shipped Turkish pack and the user's documents."""

from evo_tr.knowledge.link import KnowledgeLink, KnowledgeUnavailable, open_knowledge

__all__ = ["KnowledgeLink", "KnowledgeUnavailable", "open_knowledge"]
