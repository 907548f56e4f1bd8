"""The face stage: find each face (box + five landmarks)."""
