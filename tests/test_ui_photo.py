"""The boxed photo of a crowd (``labeler.ui.resources.boxed_image``): the face under the cursor told
apart, numbers only on the faces of the page (a crowd's would overlap), none cut off at the top."""

from __future__ import annotations

import io


from PIL import Image as PILImage  # noqa: E402

from labeler.ui import resources as R  # noqa: E402

BG = (90, 120, 160)


def near(px, color, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, color))


def test_crowd_photo_tells_the_current_face_apart_and_numbers_only_the_page(tmp_path):
    photo = tmp_path / "crowd.jpg"
    PILImage.new("RGB", (1000, 600), BG).save(photo, "JPEG", quality=95)
    # 4 rows of 6 faces, the first row touching the top edge (its numbers have no room above)
    boxes = tuple((k, 20 + (k % 6) * 160, (k // 6) * 150, 20 + (k % 6) * 160 + 100, (k // 6) * 150 + 110, str(k + 1))
                  for k in range(24))
    page, cur = tuple(range(12)), 3
    got = R.boxed_image((str(photo),), boxes, page, 1000, cur)
    im = PILImage.open(io.BytesIO(got)).convert("RGB")
    assert im.size == (1000, 600)
    lw = max(2, im.width // 150)

    def edge(k):  # a pixel on the box's left edge, halfway down
        _f, x1, y1, _x2, y2, _c = boxes[k]
        return im.getpixel((int(x1) + 1, int((y1 + y2) / 2)))

    assert near(edge(cur), R.CURRENT)  # the face under the cursor: yellow
    assert all(near(edge(k), R.HIGHLIGHT) for k in page if k != cur)  # the page's faces: red
    assert all(near(edge(k), R.OTHER) for k in range(12, 24))  # the others: grey
    for k in range(12, 24):  # ... and not numbered: nothing drawn where their caption would be
        _f, x1, y1, _x2, _y2, _c = boxes[k]
        assert near(im.getpixel((int(x1) + 8, int(y1) - 8)), BG), k
    for k in (0, 1, 2, 4, 5):  # the top row's numbers: inside the box (red caption background), not cut off
        _f, x1, y1, _x2, _y2, _c = boxes[k]
        assert near(im.getpixel((int(x1) + 2 * lw + 1, int(y1) + lw + 3)), R.HIGHLIGHT), k
    whole = R.boxed_image((str(photo),), boxes, None, 1000)  # nothing highlighted: every face alike, numbered
    im2 = PILImage.open(io.BytesIO(whole)).convert("RGB")
    assert all(near(im2.getpixel((int(b[1]) + 1, int((b[2] + b[4]) / 2))), R.PLAIN) for b in boxes)
