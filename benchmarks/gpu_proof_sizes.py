"""Model sizes for ``benchmarks/gpu_proof.py``: the real configs (random weights are built from them,
nothing is downloaded) and the tiny ones the test suite runs on a CPU.

Each real number comes from the model's published config; where the project's libraries carry the
same numbers as class defaults, that is said too (diffusers 0.42 and transformers 5 were read).
Sources, as found with the search tool (the official repositories are gated or not indexed, so
the configs were read in verbatim copies whose ``_name_or_path`` names the official snapshot):

* FLUX.1-dev transformer: diffusers' ``FluxTransformer2DModel`` defaults are FLUX.1's sizes
  (patch 1, in 64, 19 double + 38 single blocks, 24 heads × 128, joint 4096, pooled 768, rope
  axes 16/56/56); ``guidance_embeds`` is True for dev (Black Forest Labs' ``flux-dev`` params:
  ``guidance_embed: true``; schnell has none).
* FLUX.1-dev VAE: ``black-forest-labs/FLUX.1-dev/vae/config.json`` (copy e.g. at
  huggingface.co/datasets/qbhf2/example-space-to-dataset-json, data/FLUX.1-dev/vae/config.json).
* CLIP-L and T5-XXL: ``FLUX.1-dev/text_encoder/config.json`` (copy at magespace/FLUX.1-dev-bnb-8bit)
  and ``FLUX.1-dev/text_encoder_2/config.json`` (copy at aoxo/flux.1dev-abliterated).
* Qwen-Image-Edit(-2509) transformer: diffusers' ``QwenImageTransformer2DModel`` defaults (60
  layers, 24 heads × 128, joint 3584, in 64, out 16, patch 2, rope axes 16/56/56, no guidance
  embedding), identical to ``Qwen-Image-Edit-2509/config.json`` (copy in lightx2v/Qwen-Image-Lightning).
* Qwen-Image VAE: diffusers' ``AutoencoderKLQwenImage`` defaults (base 96, z 16, mult 1/2/4/4,
  2 res blocks, temporal downsample F/T/T, the 16 latent means/stds), the checkpoint's config.
* Qwen2.5-VL-7B (Qwen-Image-Edit's text encoder): ``Qwen/Qwen2.5-VL-7B-Instruct/config.json``
  (copy at Qwen/Qwen2.5-VL-7B-Instruct-AWQ; text 3584 wide, 18944 MLP, 28 layers, 28 heads, 4 KV
  heads, vocab 152064, rope θ 1e6, mrope 16/24/24); its vision tower from a full copy of that
  config (Icey444/Ground-R1_orig_1050: depth 32, 1280 wide, 3420 MLP, 16 heads, out 3584, patch 14,
  window 112, full attention in blocks 7/15/23/31), also transformers' ``Qwen2_5_VLVisionConfig``
  defaults.
* Qwen3-VL-8B (the judge): ``Qwen/Qwen3-VL-8B-Instruct/config.json`` (copies at Steinate/Cortex and
  Chhagan005/CSM-DocExtract-8N; ollama's ``qwen3-vl:8b`` metadata agrees): text 4096 wide, 12288
  MLP, 36 layers, 32 heads / 8 KV heads × 128, vocab 151936, rope θ 5e6, interleaved mrope
  24/20/20, untied embeddings; vision 27 blocks, 1152 wide, 4304 MLP, 16 heads, patch 16, merge 2,
  out 4096, deepstack 8/16/24 (transformers' ``Qwen3VLVisionConfig`` defaults except the output
  width); processor budget 65536–16777216 pixels (64–16384 merged 32-px tokens), mean/std 0.5.

The tokenizers are never the real ones (they are not available offline): the small in-memory BPE
tokenizers of ``arrpo.rl.tiny`` and ``arrpo.testing.tiny_qwen`` stand in. Their token ids fit the
real vocabularies; the sequence lengths that matter are the real ones (T5 pads to 512, images
become their real token grids), but a prompt's text is split into a different number of tokens.
"""

from __future__ import annotations

from typing import Any

# ----------------------------------------------------------------------------------------- FLUX
FLUX_DEV: dict[str, dict[str, Any]] = {
    "transformer": {
        "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
        "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
        "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": [16, 56, 56],
    },
    "vae": {
        "block_out_channels": [128, 256, 512, 512], "latent_channels": 16, "layers_per_block": 2,
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "norm_num_groups": 32, "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159,
        "use_quant_conv": False, "use_post_quant_conv": False, "mid_block_add_attention": True,
    },
    "text_encoder": {  # CLIP-L/14 text tower (CLIPTextModel; pooled output 768)
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    },
    "text_encoder_2": {  # T5-XXL encoder (T5EncoderModel; 4096-wide hidden states)
        "vocab_size": 32128, "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64,
        "num_layers": 24, "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new",
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "layer_norm_epsilon": 1e-6,
    },
}  # fmt: skip

# ------------------------------------------------------------------------------ Qwen-Image-Edit
QWEN_IMAGE_EDIT: dict[str, Any] = {
    "transformer": {
        "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
        "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584,
        "guidance_embeds": False, "axes_dims_rope": [16, 56, 56],
    },
    "vae": {
        "base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
        "temperal_downsample": [False, True, True],
        "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                         0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
        "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160],
    },
    "text": {  # Qwen2.5-VL-7B language model
        "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    },
    "vision": {  # Qwen2.5-VL-7B vision tower
        "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "out_hidden_size": 3584, "hidden_act": "silu",
    },
    # Qwen2-VL image processor budget (transformers' defaults and the checkpoint's: 3136–12845056
    # pixels), in merged 28-px tokens.
    "image_tokens": (4, 16384),
}  # fmt: skip

# ------------------------------------------------------------------------------- Qwen3-VL-8B
QWEN3_VL_8B: dict[str, Any] = {
    "text": {
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "max_position_embeddings": 262144, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                            "mrope_interleaved": True},
    },
    "vision": {
        "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 4096,
        "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24],
        "hidden_act": "gelu_pytorch_tanh",
    },
    "image_tokens": (64, 16384),
}  # fmt: skip

#: One scale of the proof: the model sizes (``None`` = the tiny builders' own) and the run settings.
SCALES: dict[str, dict[str, Any]] = {
    "real": {
        "flux": FLUX_DEV, "qwen-edit": QWEN_IMAGE_EDIT, "judge": QWEN3_VL_8B,
        "resolution": 512,  # RPO rollouts, as the paper
        "flux_max_sequence_length": 512,  # T5 tokens (FLUX.1-dev's)
        "judge_image": 1024,  # each of the two judged images is 1024 × 1024
        "judge_new_tokens": 64,  # a short JSON answer's worth of decoding
    },
    "tiny": {
        "flux": None, "qwen-edit": None, "judge": None,
        "resolution": 32,
        "flux_max_sequence_length": 16,
        "judge_image": 64,
        "judge_new_tokens": 6,
    },
}
