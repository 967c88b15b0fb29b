"""Backbone families beyond Stable Diffusion 1.x/2.x that the one UNet sampling loop drives through its hooks
(``LayoutPipeline.encode_conditioning``): :mod:`.sdxl`."""
