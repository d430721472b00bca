// The pre-join screen's cameras and microphones: the lists to choose from, and the preview
// stream opened with the chosen ones (the same stream is then sent in the meeting).

// 960×540: the smallest picture Chromium sends three simulcast layers of (call.js).
const VIDEO = { width: 960, height: 540 };

/**
 * Open the camera and microphone, the chosen ones if given ("" lets the browser choose).
 * @param {string} audioId @param {string} videoId
 * @returns {Promise<MediaStream>}
 */
export function openDevices(audioId, videoId) {
  return navigator.mediaDevices.getUserMedia({
    audio: audioId ? { deviceId: { exact: audioId } } : true,
    video: videoId ? { ...VIDEO, deviceId: { exact: videoId } } : VIDEO,
  });
}

/** @param {MediaStream | null} stream */
export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/**
 * Fill a select with the devices of one kind, the one in use selected.
 * @param {HTMLSelectElement} select @param {MediaDeviceInfo[]} devices
 * @param {"audioinput" | "videoinput"} kind @param {MediaStreamTrack | undefined} inUse
 * @param {string} fallbackLabel for a device the browser gives no label
 */
export function fillDeviceSelect(select, devices, kind, inUse, fallbackLabel) {
  const current = inUse ? inUse.getSettings().deviceId || "" : "";
  const options = devices
    .filter((d) => d.kind === kind && d.deviceId)
    .map((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${fallbackLabel} ${i + 1}`;
      option.selected = d.deviceId === current;
      return option;
    });
  select.replaceChildren(...options);
  select.disabled = options.length === 0;
}
