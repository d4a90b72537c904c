"""``spinequant traces MOVIE --rois RESULT/ --out OUT``: calcium traces of every spine."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "traces", help="ΔF/F0 traces of every spine and dendrite of a result in a movie",
        description="Measure the mean raw fluorescence of every spine and dendrite ROI of a "
                    "structural result (labels_spines.tif, labels_dendrites.tif) in every frame of "
                    "a movie of the same field of view, after rigid motion correction (phase "
                    "correlation, sub-pixel, in µm), and turn it into ΔF/F0. With --psf-fwhm every frame "
                    "is demixed first (least squares with the PSF-blurred footprints of all ROIs), so that "
                    "a small spine's trace is its own light. Writes traces.csv "
                    "(one row per frame per ROI), dff.csv (one column per ROI), shifts.csv, "
                    "traces.png, traces.html (a page with the figures and a row per ROI) and traces.json "
                    "(settings) into --out.")
    p.add_argument("movie", help="the movie: a TIFF/OME-TIFF with a time axis, or a multi-page TIFF "
                                 "of 2D frames")
    p.add_argument("--rois", required=True, metavar="RESULT", help="a 'spinequant analyze' result folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the tables and the figure")
    p.add_argument("--frame-rate", type=float, default=1.0, metavar="HZ", help="frames per second (default 1)")
    p.add_argument("--baseline", type=int, nargs=2, metavar=("FIRST", "LAST"),
                   help="F0 = mean of these frames (0-based, inclusive)")
    p.add_argument("--percentile", type=float, default=None, metavar="P",
                   help="F0 = running P-th percentile (with --window) for long recordings")
    p.add_argument("--window", type=float, default=None, metavar="S", help="running window of F0, seconds")
    p.add_argument("--neuropil", type=float, default=0.0, metavar="R",
                   help="subtract R x the parent dendrite's trace from each spine's (default 0; only "
                        "without demixing)")
    p.add_argument("--psf-fwhm", nargs="+", type=float, metavar="UM",
                   help="the microscope's PSF FWHM in µm (Z XY for a 3D movie, XY for 2D; measured, e.g. on "
                        "beads): every frame is then demixed with the ROIs' blurred footprints, so a small "
                        "spine's trace is its own and not its dendrite's or neighbours' light")
    p.add_argument("--no-demix", action="store_true",
                   help="with --psf-fwhm, keep the plain ROI means (no demixing)")
    p.add_argument("--smooth", type=int, default=1, metavar="N", help="moving average over N frames")
    p.add_argument("--background", type=float, default=0.0, metavar="ADU",
                   help="detector offset subtracted before ΔF/F0 (default 0)")
    p.add_argument("--no-registration", action="store_true", help="do not correct motion")
    p.add_argument("--channel", type=int, default=None, metavar="C", help="channel of the movie")
    p.add_argument("--voxel-size", nargs="+", type=float, metavar="UM",
                   help="pixel size of the movie (Y X, or Z Y X) when its file does not record it")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..timelapse.files import TraceConfig, traces_from_files

    config = TraceConfig(frame_rate_hz=args.frame_rate, baseline=tuple(args.baseline) if args.baseline else None,
                         percentile=args.percentile, window_s=args.window, neuropil_r=args.neuropil,
                         smooth_frames=args.smooth, register=not args.no_registration,
                         background=args.background,
                         psf_fwhm_um=tuple(args.psf_fwhm) if args.psf_fwhm else None, demix=not args.no_demix)
    result = traces_from_files(args.movie, args.rois, args.out, config=config, channel=args.channel,
                               voxel_size=args.voxel_size)
    for note in result["notes"]:
        print(f"note: {note}")
    demixed = " (demixed)" if config.demixes else ""
    print(f"traces of {result['n_spines']} spines{demixed}; results in {args.out}/ (traces.csv, dff.csv, "
          f"traces.png, traces.html)")
    return 0
