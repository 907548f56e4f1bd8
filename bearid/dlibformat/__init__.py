"""Reading dlib's model files (.dat) without dlib: the serialization format, the networks
the original BearID tools use (the MMOD face detector and the metric-learning ResNet), and
shape predictors; the layouts of the face files (`faces`), bearsvm's SVM and ids (`svm`,
run as a class stage by `classifier`), and bearembed's embedding files (`embeddings`,
written byte for byte as dlib writes them by `writer`); and a network file written back with
new parameters (`network_writer`: a fine-tuned detector for dlib's own tools).

dlib's format is not self-describing: a network file is its layers' parameters with no word
of how they connect. So a file is read against the architectures BearID knows (the ones in
`network.ARCHITECTURES`, from dlib's and the original BearID's source), and refused, naming
the layer and the byte, where it does not fit one of them.
"""

from bearid.dlibformat.reader import DlibFormatError, Reader

__all__ = ["DlibFormatError", "Reader"]
