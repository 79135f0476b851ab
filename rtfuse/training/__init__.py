"""Offline side: losses, teacher and student networks, distillation into LUTs (needs torch)."""
