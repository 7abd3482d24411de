; Inno Setup script for Whetstone's per-user Windows installer (Inno Setup 6.x).
; packaging\windows\build.ps1 builds dist\whetstone\ first and then runs:
;   iscc /DAppVersion=0.1.0 /DSourceDir=<repo>\dist\whetstone /DOutputDir=<repo>\dist packaging\windows\whetstone.iss
;
; Per user, no administrator rights: the app goes to %LOCALAPPDATA%\Programs\Whetstone, a Start-menu
; shortcut to the current user's menu, the uninstaller to "Apps & features" of this user only.
; The uninstaller removes only the program folder: the user's data stays
;   workspace (projects, converted models):  %WHETSTONE_HOME% if set, else %LOCALAPPDATA%\whetstone
;   settings (window layout, theme, chosen workspace folder):  HKCU\Software\Whetstone\Whetstone

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\whetstone"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
AppId={{6C9B3E62-5A0B-4F3B-9E63-2E1F0B7A9D41}
AppName=Whetstone
AppVersion={#AppVersion}
AppVerName=Whetstone {#AppVersion}
AppPublisher=Whetstone
AppComments=Fine-tune open language models with QLoRA on your own machine, offline.
; Per-user install: no UAC prompt, nothing under Program Files or HKLM.
PrivilegesRequired=lowest
DefaultDirName={localappdata}\Programs\Whetstone
DefaultGroupName=Whetstone
DisableProgramGroupPage=yes
DisableDirPage=auto
UninstallDisplayName=Whetstone {#AppVersion}
UninstallDisplayIcon={app}\whetstone.exe
SetupIconFile=..\..\resources\icons\whetstone.ico
OutputDir={#OutputDir}
OutputBaseFilename=whetstone-{#AppVersion}-windows-x64-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; torch and the Qt libraries compress well with LZMA2; solid makes the installer smaller, not slower to run.
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Close a running Whetstone before replacing its files (training runs in whetstone-engine.exe are
; separate processes: the user is asked about them by Windows' Restart Manager).
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole one-folder app: whetstone.exe, whetstone-engine.exe (must stay side by side) and _internal\.
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{userprograms}\Whetstone"; Filename: "{app}\whetstone.exe"; WorkingDir: "{app}"; Comment: "QLoRA fine-tuning, offline"
Name: "{userdesktop}\Whetstone"; Filename: "{app}\whetstone.exe"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\whetstone.exe"; Description: "{cm:LaunchProgram,Whetstone}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the installer put in {app} (plus stray __pycache__ folders); never the user's data.
Type: filesandordirs; Name: "{app}\_internal"

[Messages]
FinishedLabel=Setup has installed Whetstone on your computer.%n%nYour projects and converted models will live in %LOCALAPPDATA%\whetstone (or in %WHETSTONE_HOME% if you set it). Uninstalling Whetstone keeps them.

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and not UninstallSilent then
    MsgBox('Whetstone was removed. Your data was kept:' + #13#10 +
           '  ' + ExpandConstant('{localappdata}') + '\whetstone (projects, converted models; or %WHETSTONE_HOME%)' + #13#10 +
           '  HKEY_CURRENT_USER\Software\Whetstone (settings)' + #13#10 +
           'Delete them yourself if you do not need them any more.', mbInformation, MB_OK);
end;
