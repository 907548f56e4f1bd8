"""Labels to and from the tools curators use for bulk work and review: COCO keypoints JSON,
CVAT for images 1.1 XML, Label Studio JSON tasks and FiftyOne's dataset format.

records.py is the model every format maps to (photos by relative path, faces with the five
named landmarks, the bear ID, ignore, cub and the other attributes); coco.py, cvat.py,
labelstudio.py and fiftyone.py each map it to one format; transfer.py exports an imglab XML
and imports a file back into one through the label store (journalled, versioned, undoable;
a photo edited since the export is reported, never written over).
"""

from bearid.labels.transfer import FORMATS, ExportReport, ImportReport, export_labels, import_labels, read_labels

__all__ = ["FORMATS", "ExportReport", "ImportReport", "export_labels", "import_labels", "read_labels"]
