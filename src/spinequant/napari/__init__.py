"""The napari plugin: a thin front end over :func:`spinequant.analyze` and :mod:`spinequant.edit`.

Installed with ``pip install 'spinequant[napari]'``; napari finds it through the
``napari.manifest`` entry point (``napari.yaml`` beside this file). Nothing here holds
analysis or editing logic: the widgets parse fields, call the API in a worker thread and show
the results as layers. Importing :mod:`spinequant` never imports this package (nor napari/Qt).
"""
