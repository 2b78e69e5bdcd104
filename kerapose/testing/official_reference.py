"""The official top-down test pipeline in NumPy, as a reference for tests.

Written from the description of the official HRNet code
(`lib/dataset/coco.py` `_xywh2cs`, `lib/utils/transforms.py`
`get_affine_transform` / `flip_back`, `lib/core/function.py` `validate`,
`lib/core/inference.py` `get_final_preds`) and of the official RSN input
(`exps/*/config.py`: BGR images, ImageNet mean/std in BGR order;
`dataset/JointsDataset.py` test box; `test.py` `get_results`). It
shares no code with `kerapose.inference`, so that tests can check
kerapose's crop, normalisation, flip test and decode against it.

Shapes: N people, K keypoints, (H, W) network input, (h, w) heatmap.
"""

import cv2
import numpy as np

PIXEL_STD = 200.0
# Normalisation on 0-1 pixels, in the channel order the network sees.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
BGR_MEAN = (0.406, 0.456, 0.485)
BGR_STD = (0.225, 0.224, 0.229)


def box_to_center_scale(box, aspect_ratio, padding=1.25):
    """`_xywh2cs`: box (x, y, w, h) -> center (2,), scale (2,) / 200.

    The short side grows to the input's aspect ratio (W / H), then the
    size is padded by `padding`.
    """
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], np.float32) * padding
    return center, scale


def rsn_box_to_center_scale(box, aspect_ratio, extension=(0.09, 0.135)):
    """The official RSN test box: width and height grown by `extension`
    (`TEST.X_EXTENTION`, `TEST.Y_EXTENTION`), then the short side grown to
    the aspect ratio (W / H); no further padding."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD])
    scale *= 1.0 + np.asarray(extension)
    if scale[0] > aspect_ratio * scale[1]:
        scale[1] = scale[0] / aspect_ratio
    else:
        scale[0] = scale[1] * aspect_ratio
    return center, scale.astype(np.float32)


def affine_transform(center, scale, size, inverse=False):
    """`get_affine_transform` without rotation: image -> an (h, w) grid.

    Three float32 point pairs (the centre, the point half a box width
    above it, and a third at a right angle) through
    `cv2.getAffineTransform`, as the official code builds it.

    Args:
        center, scale: the box, as `box_to_center_scale` returns it.
        size: `(h, w)` of the grid (network input or heatmap).
        inverse: bool. The grid -> image matrix instead.
    """
    h, w = size
    src_w = float(scale[0]) * PIXEL_STD
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = np.asarray(center) + np.array([0.0, -0.5 * src_w])
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = [w * 0.5, h * 0.5 - 0.5 * w]
    for points in (src, dst):  # rotate (a - b) by 90 degrees about b
        d = points[0] - points[1]
        points[2] = points[1] + np.array([-d[1], d[0]], np.float32)
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def crop(image_bgr, center, scale, input_size, channel_order="rgb"):
    """One person's network input: warp, channel order, normalisation.

    Args:
        image_bgr: (rows, cols, 3) uint8 as `cv2.imread` returns it.
        center, scale: the box.
        input_size: `(H, W)`.
        channel_order: `"rgb"` (HRNet: `cv2.cvtColor` to RGB, ImageNet
            mean/std) or `"bgr"` (official RSN: BGR kept, the statistics
            in BGR order).

    Returns:
        (H, W, 3) float32.
    """
    if channel_order == "rgb":
        image = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        mean, std = RGB_MEAN, RGB_STD
    elif channel_order == "bgr":
        image = image_bgr
        mean, std = BGR_MEAN, BGR_STD
    else:
        raise ValueError(f"channel_order: 'rgb' or 'bgr', not {channel_order}")
    h, w = input_size
    matrix = affine_transform(center, scale, input_size)
    warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR)
    pixels = warped.astype(np.float32) / 255.0  # torchvision ToTensor
    return (pixels - np.float32(mean)) / np.float32(std)


def merge_flipped(heatmaps, flipped, flip_pairs, shift):
    """`flip_back` and the average: mirror the heatmaps of the mirrored
    input back, swap left/right joints, optionally shift one pixel right.

    Args:
        heatmaps, flipped: (N, h, w, K).
        flip_pairs: pairs `(i, j)` of joints that swap.
        shift: bool. `TEST.SHIFT_HEATMAP` (HRNet: on; RSN: none).
    """
    back = flipped[:, :, ::-1].copy()
    for i, j in flip_pairs:
        back[..., [i, j]] = back[..., [j, i]]
    if shift:
        back[:, :, 1:] = back[:, :, :-1].copy()
    return (heatmaps + back) * 0.5


def decode(heatmaps, centers, scales):
    """`get_final_preds` with `TEST.POST_PROCESS`: argmax, a quarter pixel
    toward the higher neighbour (interior peaks only), back to the image.

    Args:
        heatmaps: (N, h, w, K).
        centers, scales: (N, 2) boxes.

    Returns:
        keypoints (N, K, 2) in image pixels and maxima (N, K).
    """
    n, h, w, k = heatmaps.shape
    maps = heatmaps.transpose(0, 3, 1, 2)
    flat = maps.reshape(n, k, h * w)
    index = flat.argmax(-1)
    maxima = flat.max(-1)
    coords = np.stack([index % w, index // w], -1).astype(np.float64)
    coords *= (maxima > 0)[..., None]
    for p in range(n):
        for j in range(k):
            px, py = (int(np.floor(c + 0.5)) for c in coords[p, j])
            if 1 < px < w - 1 and 1 < py < h - 1:
                hm = maps[p, j]
                diff = np.array(
                    [
                        hm[py, px + 1] - hm[py, px - 1],
                        hm[py + 1, px] - hm[py - 1, px],
                    ]
                )
                coords[p, j] += np.sign(diff) * 0.25
    out = np.zeros_like(coords)
    for p in range(n):
        matrix = affine_transform(centers[p], scales[p], (h, w), inverse=True)
        out[p] = coords[p] @ matrix[:, :2].T + matrix[:, 2]
    return out, maxima


def decode_margins(heatmaps):
    """How far each (N, K) decode is from changing its pixel: the gap
    between the maximum and the runner-up, and the smallest non-zero
    neighbour difference that sets the quarter-pixel direction. A decode
    is stable under round-off of size `e` when both exceed `e`."""
    n, h, w, k = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(n, k, h * w)
    top2 = np.sort(flat, -1)[..., -2:]
    gap = top2[..., 1] - top2[..., 0]
    index = flat.argmax(-1)
    px, py = index % w, index // w
    maps = heatmaps.transpose(0, 3, 1, 2)
    side = np.full((n, k), np.inf)
    for p in range(n):
        for j in range(k):
            x, y = px[p, j], py[p, j]
            if 1 < x < w - 1 and 1 < y < h - 1:
                hm = maps[p, j]
                side[p, j] = min(
                    abs(hm[y, x + 1] - hm[y, x - 1]),
                    abs(hm[y + 1, x] - hm[y - 1, x]),
                )
    return np.minimum(gap, side)


def _rsn_blurred(heatmaps, kernel, border):
    """Each (h, w) map in a zero frame of `border` pixels, blurred by
    `cv2.GaussianBlur(ksize, 0)`: (N, K, h + 2 border, w + 2 border)."""
    n, h, w, k = heatmaps.shape
    frame = np.zeros((n, k, h + 2 * border, w + 2 * border))
    frame[:, :, border:-border, border:-border] = heatmaps.transpose(0, 3, 1, 2)
    for p in range(n):
        for j in range(k):
            frame[p, j] = cv2.GaussianBlur(frame[p, j], (kernel, kernel), 0)
    return frame


def decode_rsn(heatmaps, centers, scales, input_size, kernel=5, shift=0.25):
    """The official RSN `get_results`: blurred maps in a 10-pixel zero
    frame, the maximum moved `shift` pixels toward the second maximum (the
    first set to zero), clipped, `x * 4 + 2` input pixels, back to the
    image by the box's linear map; scores `value / 255 + 0.5` at the
    rounded point.

    Returns:
        keypoints (N, K, 2) in image pixels and scores (N, K).
    """
    border = 10
    n, h, w, k = heatmaps.shape
    stride_y, stride_x = input_size[0] / h, input_size[1] / w
    frame = _rsn_blurred(heatmaps, kernel, border)
    keypoints = np.zeros((n, k, 2))
    scores = np.zeros((n, k))
    for p in range(n):
        size = np.asarray(scales[p], np.float64) * PIXEL_STD
        for j in range(k):
            dr = frame[p, j]
            y, x = np.unravel_index(dr.argmax(), dr.shape)
            dr[y, x] = 0
            x, y = float(x - border), float(y - border)
            py, px = np.unravel_index(dr.argmax(), dr.shape)
            dx, dy = px - border - x, py - border - y
            length = (dx**2 + dy**2) ** 0.5
            if length > 1e-3:
                x += shift * dx / length
                y += shift * dy / length
            x = max(0.0, min(x, w - 1.0))
            y = max(0.0, min(y, h - 1.0))
            scores[p, j] = (
                heatmaps[p, int(round(y)), int(round(x)), j] / 255 + 0.5
            )
            ix, iy = x * stride_x + stride_x / 2, y * stride_y + stride_y / 2
            keypoints[p, j] = (
                ix / input_size[1] * size[0] + centers[p][0] - size[0] / 2,
                iy / input_size[0] * size[1] + centers[p][1] - size[1] / 2,
            )
    return keypoints, scores


def decode_rsn_margins(heatmaps, kernel=5):
    """How far each (N, K) RSN decode is from changing: the gaps between
    the blurred maximum and the runner-up, and between the runner-up and
    the next value once the maximum is zeroed."""
    border = 10
    n, h, w, k = heatmaps.shape
    flat = _rsn_blurred(heatmaps, kernel, border).reshape(n, k, -1)
    top2 = np.sort(flat, -1)[..., -2:]
    first_gap = top2[..., 1] - top2[..., 0]
    zeroed = flat.copy()
    np.put_along_axis(zeroed, flat.argmax(-1)[..., None], 0.0, -1)
    next2 = np.sort(zeroed, -1)[..., -2:]
    return np.minimum(first_gap, next2[..., 1] - next2[..., 0])
