"""bearface: find each face (box + five landmarks)."""
