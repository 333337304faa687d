"""Moved to nasflow/runs/ray_tasks.py (searches and retrainings share it); its names stay
importable here for the code and users that import them from search/."""
from nasflow.runs.ray_tasks import (INSTALL, RETRIES, RayMap, check_memory, connect, parse_memory, require_ray,
                                    task_resources)

__all__ = ["INSTALL", "RETRIES", "RayMap", "check_memory", "connect", "parse_memory", "require_ray", "task_resources"]
