"""The analysis pipeline: stack -> maps -> spine objects -> tables -> exports and report."""

from .analyze import STAGES, AnalysisResult, AnalyzeConfig, analyze, save_result
from .batch import BatchItem, analyze_file, analyze_folder, find_stacks

__all__ = ["AnalyzeConfig", "AnalysisResult", "analyze", "save_result", "analyze_file",
           "analyze_folder", "find_stacks", "BatchItem", "STAGES"]
