"""Published weights: the table of sources (:mod:`.sources`), fetching (:mod:`.fetch`) and the
converted cache (:mod:`.pretrained`) behind ``create_model(name, pretrained=True)``."""
