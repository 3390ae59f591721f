"""paddle.hub entry points: every registered ppnets model, by its registry name.

    import paddle
    model = paddle.hub.load("<owner>/ppnets", "fasternet_t0", source="github", pretrained=True)
    model = paddle.hub.load("/path/to/ppnets", "repvgg_a0", source="local", pretrained=True,
                            num_classes=10)            # fine-tuning: a new 10-class classifier
    paddle.hub.list("/path/to/ppnets", source="local")  # every model
    print(paddle.hub.help("/path/to/ppnets", "fasternet_t0", source="local"))

Each entry takes :func:`ppnets.create_model`'s arguments: ``pretrained`` (``True``, a weight tag
such as ``"in1k"``, or a checkpoint path), ``num_classes``, ``deploy`` and the variant's keyword
configuration.
"""
import ppnets

dependencies = ["paddle", "numpy", "safetensors", "huggingface_hub"]


def _entry(name: str):
    def create(pretrained=False, **kwargs):
        return ppnets.create_model(name, pretrained=pretrained or None, **kwargs)

    info = ppnets.model_info(name)
    create.__name__ = create.__qualname__ = name
    create.__doc__ = (f"{name}: {info['paper']} (arXiv:{info.get('arxiv')}).\n\n"
                      f"Published: {info.get('params_m')} M params, {info.get('macs_g')} GMACs, "
                      f"top-1 {info.get('top1')} at {tuple(info['input_size'])}.\n"
                      "Arguments: those of ppnets.create_model (pretrained=True|tag|path, "
                      "num_classes, deploy, ...).")
    return create


for _name in ppnets.list_models():
    globals()[_name] = _entry(_name)
