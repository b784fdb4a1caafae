"""``deepnum.ops``: operations of computer-vision models, as ``torchvision.ops``: box IoU, box
format conversion and non-maximum suppression (``deepnum.ops.boxes``)."""
from deepnum.ops.boxes import batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image, nms, remove_small_boxes

__all__ = ["batched_nms", "box_area", "box_convert", "box_iou", "clip_boxes_to_image", "nms", "remove_small_boxes"]
