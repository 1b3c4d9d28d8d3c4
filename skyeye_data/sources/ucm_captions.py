"""UCM-Captions: five English captions for each of the 2,100 UC Merced Land Use images.

Dataset
    Qu et al. (2016) wrote captions for the UC Merced Land Use scene-classification images
    (Yang & Newsam 2010): 21 land-use classes x 100 aerial orthoimages of 256x256 pixels
    (0.3 m, USGS National Map), 5 sentences per image, 10,500 sentences in all.

Raw layout (the UCM_captions archive as extracted, under ``RAW/ucm_captions/``; the variants and
their evidence: ``UCMCaptions.layouts``)::

    dataset.json          Karpathy-style: {"images": [{"filename": "1.tif", "imgid": 0,
                          "split": "train", "sentids": [...], "sentences": [{"raw", "tokens",
                          "imgid", "sentid"}, ...]}, ...], "dataset": "ucm"}
    imgs/1.tif ... imgs/2100.tif      (the archive ships imgs.rar: extract it; images/ also accepted)

Splits: the file's own ``split`` field, 1,680 train / 210 val / 210 test images (80/10/10);
SkyEye-968k uses the 8,400 train captions.

Quirks
    - File names are the image's 1-based number; the class is not in the name (images 1-100 are
      "agricultural", 101-200 "airplane", ... in class order). RSIVQA's UCM questions name the
      same files (``1.tif:...``), so both get image key ``ucm:1``.
    - ``raw`` is pre-tokenised ("There is a piece of farmland .") and many images repeat one
      sentence to fill their five slots; the repeats are kept (one sample per caption).
    - The retrieval re-split of AMFMN (``ucm_precomp/*_caps.txt`` + ``*_filename.txt``) holds the
      same sentences under different splits; it is not read here, the original splits are.

Reading rules shared by all caption sources: :mod:`skyeye_data.sources._karpathy`.

Citation
    B. Qu, X. Li, D. Tao, X. Lu, "Deep semantic understanding of high resolution remote sensing
    image", International Conference on Computer, Information and Telecommunication Systems
    (CITS), 2016. Images: Y. Yang, S. Newsam, "Bag-of-visual-words and spatial extensions for
    land-use classification", ACM SIGSPATIAL GIS, 2010.
"""

from __future__ import annotations

from skyeye_data.sources import register
from skyeye_data.sources._karpathy import CaptionJsonSource, imgs_archive_layouts

UCM_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip


@register
class UCMCaptions(CaptionJsonSource):
    name = "ucm_captions"
    family = "ucm"
    annotation_file = "dataset.json"
    image_dir = "imgs"
    layout = "dataset.json + imgs/<n>.tif (the archive's imgs.rar extracted; images/ accepted) (2,100 images, 256x256)"
    title = "UCM-Captions"
    citation = "Qu, Li, Tao, Lu. Deep semantic understanding of high resolution remote sensing image. CITS 2016."
    license = "research use (no license stated by the authors); UC Merced images: public domain (USGS)"
    homepage = "https://github.com/201528014227051/RSICD_optimal"
    short_title = "UCM-Captions"
    benchmark_splits = ("val", "test")
    report_rank = 0
    paper_counts = {"ucm_captions": ("UCM-Captions", 8_400), "ucm_conversa": ("UCM-Conversa", 1_700)}
    published_splits = {"train": 1680, "val": 210, "test": 210}  # images per split in the release
    layouts = imgs_archive_layouts("UCM_captions")
