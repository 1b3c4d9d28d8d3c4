"""Exports of a build to the layouts other trainers read, each proven with the consumer's own loader.

``hf`` (datasets / TRL / transformers chat format), ``llamafactory`` (sharegpt + dataset_info.json),
``llava`` (LLaVA / GeoChat), ``minigptv2`` (MiniGPT-v2 / SkyEyeGPT). ``skyeye export --help`` lists them;
each module's docstring says what it writes and where each format fact comes from.
"""
