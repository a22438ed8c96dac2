"""Memory: short-term context buffer and long-term ChromaDB store with retrieval for RAG."""

from evo_tr.memory.context import ContextBuffer
from evo_tr.memory.facts import CapturedFact, capture_facts
from evo_tr.memory.manager import MemoryManager, Recall, format_memories
from evo_tr.memory.store import ImportReport, MemoryStore, NewMemory
from evo_tr.memory.types import MEMORY_TYPES, AddResult, Memory, MemoryHit, MemoryStats

__all__ = [
    "MEMORY_TYPES", "AddResult", "CapturedFact", "ContextBuffer", "ImportReport", "Memory", "MemoryHit",
    "MemoryManager", "MemoryStats", "MemoryStore", "NewMemory", "Recall", "capture_facts", "format_memories",
]
