"""What a model card says about each training method: a readable name, a few sentences, the paper and its BibTeX.

Data for :mod:`zoo.cards` (which re-exports these names); one entry per method the zoo's weights or trainers use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What a card says about a training method: a readable name, a few sentences, and the paper to cite."""

    title: str
    summary: str
    paper: str
    url: str
    bibtex: str


METHODS: dict[str, Method] = {
    "simclr": Method(
        "SimCLR",
        "SimCLR learns by contrasting two augmented views of each image: a random resized crop, flip, colour "
        "jitter, grayscale and blur give two views, an MLP head projects their embeddings, and the NT-Xent loss "
        "pulls the two views of an image together against the other 2N−2 views of the batch on the unit sphere "
        "(temperature τ). The projection head is dropped; the backbone's pooled features are the embedding.",
        "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020",
        "https://arxiv.org/abs/2002.05709",
        "@inproceedings{chen2020simclr,\n  title={A Simple Framework for Contrastive Learning of Visual "
        "Representations},\n  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, "
        "Geoffrey},\n  booktitle={ICML},\n  year={2020}\n}",
    ),
    "moco": Method(
        "MoCo v2",
        "MoCo contrasts a query view against its key view and a queue of K keys from earlier batches, so the "
        "number of negatives does not depend on the batch size. Keys come from a momentum encoder updated as "
        "θk ← m·θk + (1−m)·θq without gradients; the loss is the (K+1)-way InfoNCE. v2 adds an MLP head, "
        "stronger augmentation and a cosine schedule.",
        "Chen et al., Improved Baselines with Momentum Contrastive Learning, arXiv 2020",
        "https://arxiv.org/abs/2003.04297",
        "@article{chen2020mocov2,\n  title={Improved Baselines with Momentum Contrastive Learning},\n  "
        "author={Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},\n  "
        "journal={arXiv preprint arXiv:2003.04297},\n  year={2020}\n}",
    ),
    "mocov3": Method(
        "MoCo v3",
        "MoCo v3 drops the queue: two views of each image are encoded by an online network with a predictor and "
        "a momentum encoder, and a symmetric InfoNCE loss uses the other images of the (large) batch as "
        "negatives. For ViTs it freezes the random patch projection to stabilise training.",
        "Chen et al., An Empirical Study of Training Self-Supervised Vision Transformers, ICCV 2021",
        "https://arxiv.org/abs/2104.02057",
        "@inproceedings{chen2021mocov3,\n  title={An Empirical Study of Training Self-Supervised Vision "
        "Transformers},\n  author={Chen, Xinlei and Xie, Saining and He, Kaiming},\n  booktitle={ICCV},\n  "
        "year={2021}\n}",
    ),
    "byol": Method(
        "BYOL",
        "BYOL trains an online network (encoder, projector, predictor) to predict the projection a target "
        "network gives another view of the same image, with a normalised-MSE loss symmetrised over the two views "
        "and no negatives. The target is an exponential moving average of the online network, with its rate "
        "τ raised from τ_base to 1 by a cosine schedule.",
        "Grill et al., Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning, NeurIPS 2020",
        "https://arxiv.org/abs/2006.07733",
        "@inproceedings{grill2020byol,\n  title={Bootstrap Your Own Latent: A New Approach to Self-Supervised "
        "Learning},\n  author={Grill, Jean-Bastien and others},\n  booktitle={NeurIPS},\n  year={2020}\n}",
    ),
    "dino": Method(
        "DINO",
        "DINO is self-distillation with no labels: a student network is trained to match the output "
        "distribution of a teacher on different crops of the same image (multi-crop: the teacher sees only the "
        "global crops), with cross-entropy H(P_t, P_s). The teacher is an exponential moving average of the "
        "student; centering and sharpening of the teacher's output prevent collapse.",
        "Caron et al., Emerging Properties in Self-Supervised Vision Transformers, ICCV 2021",
        "https://arxiv.org/abs/2104.14294",
        "@inproceedings{caron2021dino,\n  title={Emerging Properties in Self-Supervised Vision Transformers},\n"
        "  author={Caron, Mathilde and Touvron, Hugo and Misra, Ishan and J{\\'e}gou, Herv{\\'e} and Mairal, "
        "Julien and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={ICCV},\n  year={2021}\n}",
    ),
    "dinov2": Method(
        "DINOv2",
        "DINOv2 scales DINO-style self-distillation to a curated 142M-image dataset (LVD-142M), adding an "
        "iBOT masked-patch objective, Sinkhorn-Knopp centering and a KoLeo regulariser; the smaller models are "
        "distilled from the ViT-g.",
        "Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, TMLR 2024",
        "https://arxiv.org/abs/2304.07193",
        "@article{oquab2024dinov2,\n  title={DINOv2: Learning Robust Visual Features without Supervision},\n"
        "  author={Oquab, Maxime and others},\n  journal={Transactions on Machine Learning Research},\n  "
        "year={2024}\n}",
    ),
    "swav": Method(
        "SwAV",
        "SwAV clusters online: each view's embedding is assigned softly to learnable prototypes with equal-size "
        "constraints (Sinkhorn-Knopp), and the network predicts one view's assignment (code) from the other "
        "view, swapping them. Multi-crop adds small crops cheaply.",
        "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020",
        "https://arxiv.org/abs/2006.09882",
        "@inproceedings{caron2020swav,\n  title={Unsupervised Learning of Visual Features by Contrasting "
        "Cluster Assignments},\n  author={Caron, Mathilde and Misra, Ishan and Mairal, Julien and Goyal, Priya "
        "and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={NeurIPS},\n  year={2020}\n}",
    ),
    "deepcluster": Method(
        "DeepCluster",
        "DeepCluster alternates two steps: k-means on the current features of the whole dataset gives pseudo-"
        "labels, then the network is trained to classify images into those clusters (with a freshly initialised "
        "head and cluster-balanced sampling so empty or giant clusters do not take over).",
        "Caron et al., Deep Clustering for Unsupervised Learning of Visual Features, ECCV 2018",
        "https://arxiv.org/abs/1807.05520",
        "@inproceedings{caron2018deepcluster,\n  title={Deep Clustering for Unsupervised Learning of Visual "
        "Features},\n  author={Caron, Mathilde and Bojanowski, Piotr and Joulin, Armand and Douze, Matthijs},\n"
        "  booktitle={ECCV},\n  year={2018}\n}",
    ),
    "deepclusterv2": Method(
        "DeepCluster-v2",
        "DeepCluster-v2 is DeepCluster rebuilt with SwAV's training recipe: k-means on L2-normalised "
        "projections gives the pseudo-labels, the centroids act as fixed prototypes of a cosine classifier, and "
        "multi-crop augmentation and an MLP head are added.",
        "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020",
        "https://arxiv.org/abs/2006.09882",
        "@inproceedings{caron2020swav,\n  title={Unsupervised Learning of Visual Features by Contrasting "
        "Cluster Assignments},\n  author={Caron, Mathilde and Misra, Ishan and Mairal, Julien and Goyal, Priya "
        "and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={NeurIPS},\n  year={2020}\n}",
    ),
    "deepercluster": Method(
        "DeeperCluster",
        "DeeperCluster combines DeepCluster's k-means pseudo-labels with rotation prediction and scales the "
        "clustering to large uncurated datasets by clustering hierarchically: a coarse level splits the data, "
        "and each part is clustered finely, so the classifier predicts (super-class, sub-class) targets.",
        "Caron et al., Unsupervised Pre-Training of Image Features on Non-Curated Data, ICCV 2019",
        "https://arxiv.org/abs/1905.01278",
        "@inproceedings{caron2019deepercluster,\n  title={Unsupervised Pre-Training of Image Features on "
        "Non-Curated Data},\n  author={Caron, Mathilde and Bojanowski, Piotr and Mairal, Julien and Joulin, "
        "Armand},\n  booktitle={ICCV},\n  year={2019}\n}",
    ),
    "selflabel": Method(
        "Self-Label",
        "Self-Label (SeLa) learns labels and representation together: it maximises the information between "
        "images and pseudo-labels under an equal-partition constraint, solved as an optimal-transport problem "
        "with a fast Sinkhorn-Knopp iteration, and trains the network by cross-entropy on those labels.",
        "Asano et al., Self-labelling via Simultaneous Clustering and Representation Learning, ICLR 2020",
        "https://arxiv.org/abs/1911.05371",
        "@inproceedings{asano2020selflabel,\n  title={Self-labelling via Simultaneous Clustering and "
        "Representation Learning},\n  author={Asano, Yuki M. and Rupprecht, Christian and Vedaldi, Andrea},\n"
        "  booktitle={ICLR},\n  year={2020}\n}",
    ),
    "selav2": Method(
        "SeLa-v2",
        "SeLa-v2 is Self-Label rebuilt with SwAV's training recipe (multi-crop, MLP head, Sinkhorn-Knopp "
        "equal-partition pseudo-labels computed on the fly).",
        "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020",
        "https://arxiv.org/abs/2006.09882",
        "@inproceedings{caron2020swav,\n  title={Unsupervised Learning of Visual Features by Contrasting "
        "Cluster Assignments},\n  author={Caron, Mathilde and Misra, Ishan and Mairal, Julien and Goyal, Priya "
        "and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={NeurIPS},\n  year={2020}\n}",
    ),
}
METHOD_ALIASES = {"mocov2": "moco", "moco-v2": "moco", "moco-v3": "mocov3", "sela": "selflabel"}


def method_info(method: str | None) -> Method | None:
    """The :class:`Method` for a method name (case-insensitive, common aliases accepted), or None."""
    if not method:
        return None
    key = method.lower()
    return METHODS.get(METHOD_ALIASES.get(key, key))
