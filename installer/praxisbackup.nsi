; praxisbackup setup for the practice server (built on Linux by scripts/windows-installer).
;
;   praxisbackup-setup-<version>.exe            interactive
;   praxisbackup-setup-<version>.exe /S         silent (service partners)
;     /CONFIG=<path>   copy this praxisbackup.toml into %ProgramData%\praxisbackup (if none yet)
;   uninstall.exe /S [/PURGE]   /PURGE also deletes configuration, catalog and logs
;
; Installs: %ProgramFiles%\praxisbackup (embeddable CPython 3.11 with the dependencies and
; praxisbackup, bin\praxisbackup.cmd on the system PATH, praxisbackup-service.exe);
; %ProgramData%\praxisbackup (configuration, catalog, logs) readable only by SYSTEM and the
; Administrators; the Windows service "praxisbackup" (praxisbackup serve: automatic start,
; restarted on failure). It is started by the setup only when a configuration exists.
Unicode true
Target amd64-unicode
ManifestSupportedOS all
RequestExecutionLevel admin
SetCompressor /SOLID lzma

!include LogicLib.nsh
!include FileFunc.nsh
!include WordFunc.nsh
!include WinMessages.nsh
!include x64.nsh

!ifndef VERSION
  !error "makensis -DVERSION=x.y.z -DPAYLOAD=<folder> -DOUTFILE=<file>"
!endif

Name "praxisbackup ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\praxisbackup"
ShowInstDetails show
ShowUninstDetails show

!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\praxisbackup"
!define ENVKEY "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"

Var DataDir
Var Python

Page directory
Page instfiles
UninstPage uninstConfirm
UninstPage instfiles

Function .onInit
  SetRegView 64
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "praxisbackup needs a 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
FunctionEnd

Section "praxisbackup"
  SetShellVarContext all
  StrCpy $DataDir "$APPDATA\praxisbackup"
  StrCpy $Python "$INSTDIR\python\python.exe"

  ; An update: stop the running service first (its files are replaced).
  nsExec::ExecToLog '"$SYSDIR\sc.exe" stop praxisbackup'
  Pop $0

  SetOutPath "$INSTDIR"
  File /r "${PAYLOAD}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; Data folder: SYSTEM and Administrators only (the staff use the status page, e-mails and
  ; printed papers, never these files: the configuration holds the SMTP password).
  CreateDirectory "$DataDir"
  CreateDirectory "$DataDir\logs"
  nsExec::ExecToLog '"$Python" -c "from praxisbackup import platform; platform.set_private_acl(r$\'$DataDir$\')"'
  Pop $0
  ${If} $0 != 0
    DetailPrint "could not set the access rights of $DataDir (exit $0)"
    SetErrorLevel 3
    Abort "could not set the access rights of $DataDir"
  ${EndIf}
  nsExec::ExecToLog '"$Python" -c "from praxisbackup.model.example import example_toml; open(r$\'$DataDir\praxisbackup.example.toml$\', $\'w$\', encoding=$\'utf-8$\').write(example_toml())"'
  Pop $0

  ; /CONFIG=<path>: a prepared configuration (kept if one exists already).
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/CONFIG=" $R1
  ${IfNot} ${Errors}
  ${AndIfNot} ${FileExists} "$DataDir\praxisbackup.toml"
    CopyFiles /SILENT "$R1" "$DataDir\praxisbackup.toml"
  ${EndIf}

  ; praxisbackup on the system PATH (once).
  ReadRegStr $0 HKLM "${ENVKEY}" "Path"
  ${WordFind} "$0" "$INSTDIR\bin" "E+1{" $1
  ${If} ${Errors}
    WriteRegExpandStr HKLM "${ENVKEY}" "Path" "$0;$INSTDIR\bin"
    SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000
  ${EndIf}

  ; The service: praxisbackup serve, automatic start, restarted after a failure (1 min, 1 min,
  ; 5 min; the failure count resets after a day). serve itself catches up a missed night.
  nsExec::ExecToLog '"$SYSDIR\sc.exe" query praxisbackup'
  Pop $0
  ${If} $0 != 0
    nsExec::ExecToLog '"$SYSDIR\sc.exe" create praxisbackup binPath= "\"$INSTDIR\praxisbackup-service.exe\"" start= auto DisplayName= "praxisbackup (Datensicherung)"'
    Pop $0
    ${If} $0 != 0
      SetErrorLevel 4
      Abort "could not register the Windows service praxisbackup (sc.exe exit $0)"
    ${EndIf}
  ${EndIf}
  nsExec::ExecToLog '"$SYSDIR\sc.exe" description praxisbackup "Naechtliche Datensicherung, Pruefung und Statusseite der Praxis (praxisbackup serve)"'
  Pop $0
  nsExec::ExecToLog '"$SYSDIR\sc.exe" failure praxisbackup reset= 86400 actions= restart/60000/restart/60000/restart/300000'
  Pop $0
  nsExec::ExecToLog '"$SYSDIR\sc.exe" failureflag praxisbackup 1'
  Pop $0
  ${If} ${FileExists} "$DataDir\praxisbackup.toml"
    nsExec::ExecToLog '"$SYSDIR\sc.exe" start praxisbackup'
    Pop $0
  ${Else}
    DetailPrint "No configuration yet: edit $DataDir\praxisbackup.example.toml, save it as praxisbackup.toml, then: sc start praxisbackup"
  ${EndIf}

  WriteRegStr HKLM "${UNINSTKEY}" "DisplayName" "praxisbackup"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTKEY}" "Publisher" "praxisbackup"
  WriteRegStr HKLM "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoRepair" 1
SectionEnd

Function un.onInit
  SetRegView 64
FunctionEnd

Section "Uninstall"
  SetShellVarContext all
  StrCpy $DataDir "$APPDATA\praxisbackup"
  nsExec::ExecToLog '"$SYSDIR\sc.exe" stop praxisbackup'
  Pop $0
  ; The service may take a moment to stop (a running job first starts the practice's services).
  StrCpy $1 0
  ${Do}
    nsExec::ExecToStack '"$SYSDIR\sc.exe" query praxisbackup'
    Pop $0
    Pop $2
    ${WordFind} "$2" "STOP_PENDING" "E+1{" $3
    ${If} ${Errors}
      ${Break}
    ${EndIf}
    Sleep 1000
    IntOp $1 $1 + 1
  ${LoopUntil} $1 >= 600
  nsExec::ExecToLog '"$SYSDIR\sc.exe" delete praxisbackup'
  Pop $0

  ReadRegStr $0 HKLM "${ENVKEY}" "Path"
  ${WordReplace} "$0" ";$INSTDIR\bin" "" "+" $1
  WriteRegExpandStr HKLM "${ENVKEY}" "Path" "$1"
  SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000

  RMDir /r "$INSTDIR\python"
  RMDir /r "$INSTDIR\bin"
  Delete "$INSTDIR\praxisbackup-service.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINSTKEY}"

  ; Configuration, catalog and logs stay unless /PURGE is given (or confirmed interactively).
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  ${IfNot} ${Errors}
    RMDir /r "$DataDir"
  ${ElseIfNot} ${Silent}
    MessageBox MB_YESNO|MB_DEFBUTTON2 "Konfiguration, Katalog und Protokolle in $DataDir ebenfalls loeschen?$\n(Also delete configuration, catalog and logs?)" IDNO keep
    RMDir /r "$DataDir"
    keep:
  ${EndIf}
SectionEnd
