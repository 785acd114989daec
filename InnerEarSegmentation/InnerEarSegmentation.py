"""3D Slicer module: fully automatic inner-ear segmentation (cochlea, vestibule, semicircular canals).

Thin on purpose: the Slicer-free work lives in InnerEarSegmentationLib (inference, model cache,
dependencies, MRML output), which is tested headless; this file is the GUI and the self-test.
"""

import logging
import traceback
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


class InnerEarSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Inner Ear Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "Terminologies"]
        self.parent.contributors = ["InnerEarSegmentation contributors"]
        self.parent.helpText = """
Segments the inner ear (cochlea, vestibule, semicircular canals) from temporal-bone CT or micro-CT,
fully automatically, with an auto-context cascade of 2D U-Nets (coronal, sagittal, axial) run by
onnxruntime on the GPU when one is usable. Select the CT and click <b>Segment inner ear</b>.<br><br>
<b>The shipped model is trained on synthetic phantoms only and is not clinically validated.</b>
Research use only; not a medical device. Import a model trained on real scans for real work.
"""
        self.parent.acknowledgementText = """
The method follows Hussain et al., "Automatic segmentation of inner ear on CT-scan using auto-context
convolutional neural network", Scientific Reports 2021.
"""
        slicer.app.connect("startupCompleted()", loadTerminology)


def loadTerminology():
    """Registers our .term.json so Slicer's terminology selector knows cochlea, vestibule, canals."""
    try:
        from InnerEarSegmentationLib.terminology import context_path

        slicer.modules.terminologies.logic().LoadTerminologyFromFile(str(context_path()))
    except Exception as error:  # never block Slicer's startup over a terminology list
        logging.warning(f"InnerEarSegmentation: terminology not loaded ({error})")


@parameterNodeWrapper
class InnerEarSegmentationParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    model: str = ""  # model folder; "" is the shipped model
    device: Annotated[str, Choice(["auto", "cpu", "gpu"])] = "auto"
    smoothing: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    keepLargestComponent: bool = True
    show3D: bool = True


class InnerEarSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._onJobDone = None
        self._measurementView = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InnerEarSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InnerEarSegmentationLogic()

        menu = qt.QMenu(self.ui.importModelButton)
        menu.addAction("From folder…", lambda: self.onImportModel("folder"))
        menu.addAction("From .zip file…", lambda: self.onImportModel("zip"))
        menu.addAction("From URL…", lambda: self.onImportModel("url"))
        self.ui.importModelButton.setMenu(menu)
        self.ui.resultsTable.horizontalHeader().setSectionResizeMode(0, qt.QHeaderView.Stretch)
        self.ui.progressBar.setRange(0, 1000)
        self._setRunning(False)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self._poll)
        self._setupMeasurements()
        self.refreshModels()
        self.initializeParameterNode()

    def _setupMeasurements(self):
        """A table of the cochlea's measurements under the results; edits re-measure after a pause."""
        self._measurementTable = slicer.qMRMLTableView()
        self._measurementTable.setMRMLScene(slicer.mrmlScene)
        self._measurementTable.visible = False
        self.layout.addWidget(self._measurementTable)
        self._measureTimer = qt.QTimer()
        self._measureTimer.setSingleShot(True)
        self._measureTimer.setInterval(800)
        self._measureTimer.connect("timeout()", lambda: self._measurementView and self._measurementView.update())

    def _showMeasurements(self, segmentation):
        from InnerEarSegmentationLib.mrml_measurements import CochleaMeasurementView

        if self._measurementView is not None:
            self._measurementView.close()
        self._measurementView = CochleaMeasurementView(segmentation, schedule=lambda work: self._measureTimer.start())
        self._measurementTable.setMRMLTableNode(self._measurementView.nodes["table"])
        self._measurementTable.visible = True

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        if self._measurementView is not None:
            self._measurementView.close()
        self._timer.stop()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not self._parameterNode.inputVolume and firstVolume:
            self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateState)
            self._updateState()

    def _updateState(self, caller=None, event=None):
        node = self._parameterNode
        ready = bool(node and node.inputVolume) and self._job is None
        self.ui.segmentButton.enabled = ready
        self.ui.segmentButton.toolTip = "Run the cascade on the selected CT." if ready else "Select a CT volume."
        index = self.ui.modelComboBox.findData(node.model if node else "")
        if index >= 0 and index != self.ui.modelComboBox.currentIndex:
            self.ui.modelComboBox.currentIndex = index
        self._showResults(node.outputSegmentation if node else None)

    # Models ---------------------------------------------------------------------------------

    def refreshModels(self):
        wasBlocked = self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        for label, folder in self.logic.availableModels():
            self.ui.modelComboBox.addItem(label, folder)
        self.ui.modelComboBox.blockSignals(wasBlocked)

    def onModelChanged(self, index):
        if self._parameterNode and index >= 0:
            self._parameterNode.model = self.ui.modelComboBox.itemData(index) or ""

    def onImportModel(self, kind):
        if kind == "folder":
            source = qt.QFileDialog.getExistingDirectory(None, "Model folder (with manifest.json)")
        elif kind == "zip":
            source = qt.QFileDialog.getOpenFileName(None, "Model archive", "", "Model archives (*.zip)")
        else:
            source = qt.QInputDialog.getText(None, "Import model", "URL of a model .zip or manifest.json:")
        if not source:
            return
        from InnerEarSegmentationLib.model_store import import_model

        def done(folder):
            self.refreshModels()
            self._parameterNode.model = str(folder)
            self.ui.statusLabel.text = f"Model imported into {folder}"

        self._startJob(lambda progress: import_model(source, progress=progress), done, "Importing model…")

    # Segmentation ---------------------------------------------------------------------------

    def onSegment(self):
        node = self._parameterNode
        output = node.outputSegmentation
        replace = False
        if output and output.GetSegmentation().GetNumberOfSegments():
            count = output.GetSegmentation().GetNumberOfSegments()
            if not slicer.util.confirmOkCancelDisplay(
                    f"'{output.GetName()}' already has {count} segment(s). Replace them?", "Replace segmentation"):
                return
            replace = True
        with slicer.util.tryWithErrorDisplay("Cannot start the segmentation.", waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            from InnerEarSegmentationLib.mrml_output import check_can_write, write_result
            from InnerEarSegmentationLib.mrml_segment import get_segmenter
            from InnerEarSegmentationLib.mrml_volume import sitk_from_volume_node

            check_can_write(output, replace)
            volume, image = node.inputVolume, sitk_from_volume_node(node.inputVolume)
            settings = (node.model, node.device, node.keepLargestComponent)

        def work(progress):
            return get_segmenter(*settings).segment(image, progress, source=volume.GetName())

        def done(result):
            segmentation = write_result(slicer.mrmlScene, volume, result.labelmap, result.labels, output,
                                        replace, node.smoothing, node.show3D, result.report)
            node.outputSegmentation = segmentation
            self.ui.statusLabel.text = result.report.get("provider_note", "")
            self._showMeasurements(segmentation)

        self._startJob(work, done, "Segmenting…")

    def _startJob(self, work, onDone, message):
        from InnerEarSegmentationLib.background import BackgroundJob

        self._onJobDone = onDone
        self._job = BackgroundJob(work).start()
        self.ui.statusLabel.text = message
        self._setRunning(True)
        self._timer.start()

    def _poll(self):
        job = self._job
        latest = job.poll() if job else None
        if latest:
            self.ui.progressBar.value = int(latest[0] * 1000)
            self.ui.progressBar.format = f"{latest[1]} (%p%)"
        if job is None or not job.finished:
            return
        self._timer.stop()
        self._job = None
        self._setRunning(False)
        try:
            self._finish(job)
        finally:
            self._updateState()

    def _finish(self, job):
        from InnerEarSegmentationLib.errors import Cancelled, InnerEarError

        if isinstance(job.error, Cancelled):
            self.ui.statusLabel.text = str(job.error)
            return
        if job.error is None:
            try:
                self._onJobDone(job.result)
                return
            except Exception as error:
                job.error, job.traceback = error, traceback.format_exc()
        self.ui.statusLabel.text = "Failed."
        logging.error(job.traceback)
        if isinstance(job.error, InnerEarError):  # a message meant for the user, no traceback
            slicer.util.errorDisplay(str(job.error))
        else:
            slicer.util.errorDisplay(f"Unexpected error: {job.error}", detailedText=job.traceback)

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()
            self.ui.statusLabel.text = "Cancelling after the current batch…"

    def _setRunning(self, running):
        self.ui.progressBar.visible = running
        self.ui.cancelButton.visible = running
        self.ui.progressBar.value = 0
        self.ui.segmentButton.enabled = not running and bool(self._parameterNode and self._parameterNode.inputVolume)

    def _showResults(self, segmentation):
        from InnerEarSegmentationLib.mrml_output import report_of

        report = report_of(segmentation) if segmentation else None
        segments = report.get("segments", []) if report else []
        self.ui.resultsTable.setRowCount(len(segments))
        for row, segment in enumerate(segments):
            self.ui.resultsTable.setItem(row, 0, qt.QTableWidgetItem(segment["name"]))
            self.ui.resultsTable.setItem(row, 1, qt.QTableWidgetItem(f"{segment['volume_mm3']:.2f}"))
        if report:
            seconds = sum(report.get("timings_s", {}).values())
            model = report.get("model", {})
            warnings = "".join(f"\nWarning: {text}" for text in report.get("warnings", []))
            self.ui.runInfoLabel.text = (f"{seconds:.1f} s on {report.get('provider', '?')} · model "
                                         f"{model.get('id', '?')} {model.get('version', '')}{warnings}")
        else:
            self.ui.runInfoLabel.text = ""
        self.ui.exportButton.enabled = bool(segmentation and segmentation.GetSegmentation().GetNumberOfSegments())

    def onExport(self):
        segmentation = self._parameterNode.outputSegmentation
        folder = qt.QFileDialog.getExistingDirectory(None, "Folder for the surface files")
        if not segmentation or not folder:
            return
        from InnerEarSegmentationLib.mrml_output import export_surfaces

        with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
            files = export_surfaces(segmentation, folder, self.ui.exportFormatComboBox.currentText)
            self.ui.statusLabel.text = f"Wrote {len(files)} file(s) into {folder}"


class InnerEarSegmentationLogic(ScriptedLoadableModuleLogic):
    """Console use: ``InnerEarSegmentationLogic().segment(getNode('CT'))`` returns the segmentation."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._dependenciesChecked = False

    def getParameterNode(self):
        return InnerEarSegmentationParameterNode(super().getParameterNode())

    def ensureDependencies(self, ask=None):
        """Installs onnxruntime (GPU build only with an NVIDIA GPU) after consent; True when ready."""
        if self._dependenciesChecked:
            return True
        from InnerEarSegmentationLib.dependencies import ensure_onnxruntime
        from InnerEarSegmentationLib.mrml_segment import forget_segmenters

        ask = ask or (lambda text: slicer.util.confirmOkCancelDisplay(text, "Install onnxruntime"))
        try:
            plan = ensure_onnxruntime(ask, slicer.util.pip_install, slicer.util.pip_uninstall)
        except RuntimeError as error:
            slicer.util.errorDisplay(str(error))
            return False
        if plan.needed:
            forget_segmenters()
        self._dependenciesChecked = True
        return True

    def availableModels(self):
        """(label, folder) pairs: the shipped model first ("" folder), then the shared cache."""
        from InnerEarSegmentationLib.model import available_models, default_model_folder, load_model
        from InnerEarSegmentationLib.model_store import cached_models

        models = []
        for folder in [*available_models(), *cached_models()]:
            try:
                manifest = load_model(folder, verify=False)
            except Exception as error:
                logging.warning(f"Skipping model {folder}: {error}")
                continue
            shipped = folder.resolve() == default_model_folder().resolve()
            label = f"{manifest.name} (shipped, phantom-trained)" if shipped else manifest.name
            models.append((label, "" if shipped else str(folder)))
        return models

    def segment(self, volumeNode, segmentationNode=None, model=None, device="auto", replace=False,
                smoothing=0.5, keepLargestComponent=True, show3D=True, progress=None):
        """Segments ``volumeNode`` and returns the vtkMRMLSegmentationNode (created if None).

        Raises OutputError if ``segmentationNode`` already has segments and ``replace`` is False.
        """
        from InnerEarSegmentationLib.mrml_output import check_can_write
        from InnerEarSegmentationLib.mrml_segment import segment_volume_node

        check_can_write(segmentationNode, replace)
        if not self.ensureDependencies():
            raise RuntimeError("onnxruntime is not available.")
        return segment_volume_node(volumeNode, segmentationNode, model, device, replace, smoothing,
                                   keepLargestComponent, show3D, progress)


class InnerEarSegmentationTest(ScriptedLoadableModuleTest):
    """Runs the real shipped model on a small phantom inside Slicer (a few seconds on a CPU)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()
        self.setUp()
        self.test_refuses_existing_segments()

    def _phantomVolume(self):
        from InnerEarSegmentationLib.mrml_volume import volume_node_from_sitk
        from InnerEarSegmentationLib.phantom import make_phantom

        phantom = make_phantom(seed=7, spacing_mm=0.5, fov_mm=20.0)
        volume = volume_node_from_sitk(phantom.image(), slicer.mrmlScene, "Phantom CT")
        volume.CreateDefaultDisplayNodes()
        return volume

    def test_segment_phantom(self):
        from InnerEarSegmentationLib import terminology
        from InnerEarSegmentationLib.mrml_output import report_of, segment_terminology

        logic = InnerEarSegmentationLogic()
        self.assertTrue(logic.ensureDependencies(ask=lambda text: True))
        self.delayDisplay("Segmenting a phantom with the shipped model")
        segmentation = logic.segment(self._phantomVolume(), device="cpu")
        segments = segmentation.GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertEqual(names, ["Cochlea", "Vestibule", "Semicircular canals"])
        for index, name in enumerate(names):
            self.assertEqual(segment_terminology(segments.GetNthSegment(index)), terminology.terminology_entry(name))
        self.assertTrue(segments.ContainsRepresentation("Closed surface"))
        volumes = {s["name"]: s["volume_mm3"] for s in report_of(segmentation)["segments"]}
        self.assertTrue(all(v > 0 for v in volumes.values()), volumes)
        self.delayDisplay(f"Test passed: {volumes}")

    def test_refuses_existing_segments(self):
        from InnerEarSegmentationLib.errors import OutputError

        existing = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        existing.GetSegmentation().AddEmptySegment("mine")
        with self.assertRaises(OutputError):
            InnerEarSegmentationLogic().segment(self._phantomVolume(), existing)
        self.delayDisplay("Test passed: existing segments are kept")
