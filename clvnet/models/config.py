"""Typed configuration of the CLV-Net model (one dataclass per box of the architecture diagram).

Architecture sub-configs that come from ``transformers`` (CLIP, Llama/Qwen2, SAM2 Hiera, SAM2
mask decoder) are kept as plain ``dict`` kwargs, so a preset YAML can spell out the full
architecture (and ``clvnet info`` can count parameters on the meta device) while a real run
points ``pretrained_path`` at a local folder, whose own ``config.json`` then wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

QUERY_TEMPLATE = (
    "Could you provide a global description of the image and a detailed description centered around "
    "the user-focused region <BOX>, and indicate the corresponding object phrases that appear in the "
    "generated description?"
)
QUERY_TEMPLATE_NO_BOX = (
    "Could you provide a global description of the image and a detailed description of its objects, "
    "and indicate the corresponding object phrases that appear in the generated description?"
)


TINY_CLIP_VISION: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "image_size": 256, "patch_size": 16}


@dataclass
class VisionConfig:
    """E_v: a ``transformers.CLIPVisionModel``; ``config`` holds ``CLIPVisionConfig`` kwargs (ignored when pretrained)."""

    pretrained_path: str | None = None
    config: dict[str, Any] = field(default_factory=lambda: dict(TINY_CLIP_VISION))
    select_layer: int = -1          # hidden_states index used as features (LLaVA uses -2)
    llm_pool: int = 2               # average llm_pool x llm_pool patches into one LLM token (1 = off)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ProjectorConfig:
    """φ_l: Linear(vision→hidden) · GELU · Linear(hidden→LLM width); ``hidden_size`` None = LLM width."""

    hidden_size: int | None = None


@dataclass
class RegionConfig:
    """E_d: K object tokens from the box crop (1 whole-box token + g×g RoI grid, or detections)."""

    mode: Literal["grid", "detections"] = "grid"
    grid: int = 2                   # g: RoI grid cells per side
    num_detections: int = 8         # token slots for the detection path (padded with a learned token)
    sampling: int = 2               # bilinear samples per RoI cell side (RoIAlign-style)
    box_embed_hidden: int = 64      # hidden width of the box-coordinate MLP
    crop_size: int = 128            # side of the region canvas E_v encodes (the box crop, resized)
    min_size: int = 16              # boxes smaller than this (pixels per side) are grown around their centre
    resize: Literal["pad", "stretch"] = "pad"   # pad: square zero canvas, aspect kept; stretch: resize as is
    # Also mark the box on the global view: a box-relative embedding of every cell (inside / above /
    # left of the box ...) added to the LLM's image tokens ("llm"), to the mask decoder's dense prompt
    # ("mask") or both. Not in the paper (its LLM locates the box from f_r alone); see design §7.
    # Needs use_box_prompt (the box is the prompt); off without it.
    box_mark: Literal["none", "llm", "mask", "both"] = "none"


@dataclass
class LoRAConfig:
    """peft LoRA for the LLM (paper: α = 8)."""

    r: int = 8
    alpha: int = 8
    dropout: float = 0.05
    # None: resolved from the loaded LLM's module names (a per-family table, else every linear layer of its
    # decoder blocks); a list names them, and a name that matches no module is an error
    target_modules: list[str] | None = None


@dataclass
class LLMConfig:
    """𝓛: any ``AutoModelForCausalLM``. ``config`` = kwargs for ``AutoConfig.for_model`` (with ``model_type``)."""

    pretrained_path: str | None = None
    tokenizer_path: str | None = None        # default: pretrained_path; None + no path = tiny BPE tokenizer
    trust_remote_code: bool = False
    torch_dtype: str | None = None           # e.g. "bfloat16" for 7B runs
    config: dict[str, Any] = field(default_factory=lambda: {
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 1024,
        "vocab_size": 1024, "tie_word_embeddings": False})
    tokenizer_vocab_size: int = 1024         # BPE vocabulary target of the tiny tokenizer
    prompt_template: str = "{image}\n{query}\n"
    query_template: str = QUERY_TEMPLATE
    query_template_no_box: str = QUERY_TEMPLATE_NO_BOX
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass
class CGFormerConfig:
    """CGFormer (eqs. 6-9); ``enabled: false`` is the Table III ablation f_g = MLP(f_h)."""

    enabled: bool = True
    num_heads: int = 4
    threshold: float | None = None           # τ; None = 1/N_valid ("above uniform")


@dataclass
class GroundingConfig:
    """Grounding encoder (the dense image embedding the mask decoder reads).

    ``sam2`` (SAM2 Hiera, the paper) and ``sam`` (SAM ViT, Table III) come from ``transformers``; the tiny
    kinds are ``shared`` (E_v's own grid plus a conv stem) and ``conv`` (a from-scratch conv pyramid).
    """

    kind: Literal["sam2", "sam", "shared", "conv"] = "shared"
    pretrained_path: str | None = None       # a Sam2Model / SamModel folder
    image_size: int = 256
    backbone: dict[str, Any] = field(default_factory=dict)   # Sam2HieraDetConfig kwargs (sam2)
    vision: dict[str, Any] = field(default_factory=dict)     # Sam2VisionConfig / SamVisionConfig kwargs
    stem_channels: int = 16                  # shared: width of the high-resolution conv stem
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])   # conv: stride 2/4/8/16 widths
    # Also feed the grounding embedding to the LLM: pooled onto the image-token grid and RoI-pooled for
    # each region token, through a zero-initialised linear map added before φ_l. Not in the paper
    # (its LLM sees E_v only); design §7.
    feed_llm: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class MaskDecoderConfig:
    """Mask decoder: ``Sam2MaskDecoder`` or ``SamMaskDecoder`` (Table III); f_g rows are sparse prompts."""

    kind: Literal["sam2", "sam"] = "sam2"
    pretrained_path: str | None = None       # a Sam2Model / SamModel folder (its mask_decoder is taken)
    config: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "iou_head_hidden_dim": 32})
    # side M of the mask targets and predictions over the whole image; None = the grounding view's side,
    # as SAM's postprocess_masks scores masks at the encoder's input resolution
    mask_size: int | None = 128


@dataclass
class LossConfig:
    """Eq. 13: L = w_cap·L_caption + w_bce·BCE + w_dice·Dice + λ·(L_csc + L_rec)."""

    caption_weight: float = 1.0
    w_bce: float = 2.0
    w_dice: float = 0.5
    csc: bool = True
    rec: bool = True
    sralign_lambda: float = 1.0              # λ of eq. 13 (``lambda`` is a Python keyword)
    csc_denominator: Literal["all", "negatives_only"] = "all"
    # CLIP's cosine similarity/τ ("cosine") or eq. 10's literal m·s/τ ("dot"), which stalled training at chance
    # in our runs (design §7, "L_csc")
    csc_similarity: Literal["dot", "cosine"] = "cosine"
    align_dim: int = 64                      # shared space of m_i and s_j
    logit_scale_init: float = 0.0            # log(1/τ) at start: τ = 1 (learnable)
    logit_scale_max: float = 4.6052          # log(100): τ >= 0.01, CLIP's clamp


@dataclass
class GenerationConfig:
    """Decoding defaults."""

    max_new_tokens: int = 512
    use_cache: bool = True
    num_beams: int = 1                       # 1 = greedy; more = beam search (streams each text at the end)
    length_penalty: float = 1.0              # beam search: the final choice divides scores by length ** this


@dataclass
class TrainableConfig:
    """Which parameters train, per component (never by substring matching).

    The paper presets compose the named policy ``clvnet/configs/model/trainable/paper.yaml`` (the paper's set:
    LoRA, CGFormer, mask decoder) plus the named extras it switches on; design §7 says why.
    """

    vision: bool = True
    projector: bool = True
    region: bool = True
    llm: Literal["full", "lora", "frozen"] = "full"
    # The special tokens' own rows always train when the LLM is not fully trained; these also train the
    # pretrained embedding matrix ("input"), the LM head ("output") or both, as GLaMM and LISA do
    llm_embeddings: Literal["new_rows", "input", "output", "both"] = "new_rows"
    cgformer: bool = True
    grounding: bool = True
    mask_decoder: bool = True
    align: bool = True                       # SRAlign heads and the logit scale


@dataclass
class CLVNetConfig:
    """The whole model."""

    name: str = "tiny"
    use_box_prompt: bool = True
    vision: VisionConfig = field(default_factory=VisionConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    region: RegionConfig = field(default_factory=RegionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    cgformer: CGFormerConfig = field(default_factory=CGFormerConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)


SPECIAL_TOKENS: tuple[str, ...] = ("<image>", "<BOX>", "<p>", "</p>", "[SEG]")
